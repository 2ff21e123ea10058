/// Called by hotreload after each update (the runtime itself never calls MetadataUpdateHandlers).
namespace SampleApp

open System
open System.Collections.Concurrent

type ReloadHandler =
    static member val Updates = 0 with get, set

    /// Greetings the app has computed. Cached values would hide an edit to Greeting.greeting forever, so the
    /// handler clears them after every update.
    static member val Greetings = ConcurrentDictionary<string, string>()

    static member ClearCache(_types: Type[]) = ReloadHandler.Greetings.Clear()

    static member UpdateApplication(types: Type[]) =
        ReloadHandler.Updates <- ReloadHandler.Updates + 1
        let names = types |> Array.map (fun t -> t.Name) |> String.concat ", "
        printfn "[app] update #%d applied to: %s (greeting cache cleared)" ReloadHandler.Updates names

[<assembly: System.Reflection.Metadata.MetadataUpdateHandler(typeof<ReloadHandler>)>]
do ()
