/// Request handlers: plain functions, so an edit here is an edit to what the next request runs.
/// The web mode of benchmarks/latency.py edits the string `hello` returns.
module WebApp.Handlers

open System.Threading

type Item = { Id: int; Name: string }

/// State kept in memory across requests (and across hot reloads): how many requests /count has served.
let mutable private served = 0

let hello () = "Hello from F#"

let count () =
    let n = Interlocked.Increment(&served)
    sprintf "count %d" n

let items () : Item list = [ { Id = 1; Name = "apple" }; { Id = 2; Name = "pear" } ]

let page () =
    "<!DOCTYPE html>\n<html><head><title>WebApp</title></head>"
    + "<body><h1 id=\"title\">Welcome</h1><p>served by F#</p></body></html>"
