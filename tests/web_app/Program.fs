module WebApp.Program

open System
open Microsoft.AspNetCore.Builder
open Microsoft.AspNetCore.Http
open Microsoft.Extensions.Hosting

[<EntryPoint>]
let main args =
    let builder = WebApplication.CreateBuilder(args)
    let app = builder.Build()
    app.UseStaticFiles() |> ignore
    app.MapGet("/", Func<string>(fun () -> Handlers.hello ())) |> ignore
    app.MapGet("/count", Func<string>(fun () -> Handlers.count ())) |> ignore
    app.MapGet("/items", Func<IResult>(fun () -> Results.Json(Handlers.items ()))) |> ignore
    app.MapGet("/status", Func<IResult>(fun () -> Results.Json(Handlers.status ()))) |> ignore
    app.MapGet("/page", Func<IResult>(fun () -> Results.Content(Handlers.page (), "text/html"))) |> ignore
    app.Run()
    0
