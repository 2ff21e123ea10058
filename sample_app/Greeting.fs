/// Edit these functions while the app runs: the next tick prints the new results.
module SampleApp.Greeting

let greeting (name: string) = sprintf "Hello, %s" name

let multiplier () = 2

let score (tick: int) = tick * multiplier ()

let describe (values: int list) =
    values |> List.map (fun v -> v + 1) |> List.sum
