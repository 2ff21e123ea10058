/// Request handlers of the web fixture: plain functions, so an edit here is an edit to what the next request runs.
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

/// Whatever /status returns is serialized as JSON: an edit may return a new type.
let status () : obj = box {| healthy = true |}

let page () =
    "<!DOCTYPE html>\n<html><head><title>WebApp</title><link rel=\"stylesheet\" href=\"/site.css\"></head>"
    + "<body><h1 id=\"title\">Welcome</h1><p>served by F#</p></body></html>"
