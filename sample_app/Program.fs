module SampleApp.Program

open System
open System.Threading

/// State that survives hot reloads: the counter keeps counting across edits.
let mutable private ticks = 0

let private tick () =
    ticks <- ticks + 1
    let greeting = ReloadHandler.Greetings.GetOrAdd("F#", Func<string, string>(Greeting.greeting))
    printfn "tick %d: %s | score %d | describe %d" ticks greeting (Greeting.score ticks)
        (Greeting.describe [ 1; 2; 3 ])

[<EntryPoint>]
let main argv =
    let interval =
        match argv with
        | [| "--interval-ms"; ms |] -> int ms
        | _ -> 1000
    printfn "SampleApp running (tick every %d ms); edit Greeting.fs and save" interval
    while true do
        tick ()
        Thread.Sleep interval
    0
