/// Called by hotreload after each update (the runtime itself never calls MetadataUpdateHandlers).
namespace SampleApp

open System

type ReloadHandler =
    static member val Updates = 0 with get, set

    static member ClearCache(_types: Type[]) = ()

    static member UpdateApplication(types: Type[]) =
        ReloadHandler.Updates <- ReloadHandler.Updates + 1
        let names = types |> Array.map (fun t -> t.Name) |> String.concat ", "
        printfn "[app] update #%d applied to: %s" ReloadHandler.Updates names

[<assembly: System.Reflection.Metadata.MetadataUpdateHandler(typeof<ReloadHandler>)>]
do ()
