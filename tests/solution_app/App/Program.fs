module App.Program

open System
open System.Threading
open Shapes

/// What the loop prints; tests call it too.
let report (tick: int) =
    sprintf "tick %d | %s | %s | %s | %s | %s" tick (Left.describe tick) (Right.describe tick)
        (Pages.Home.render tick) (Banner.banner ()) (Native.Greeter.Hello "f#")

[<EntryPoint>]
let main argv =
    let interval = match argv with [| ms |] -> int ms | _ -> 200
    let mutable tick = 0
    while true do
        tick <- tick + 1
        Console.WriteLine(report tick)
        Thread.Sleep interval
    0
