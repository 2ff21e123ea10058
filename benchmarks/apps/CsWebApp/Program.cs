// The C# twin of FsWebApp/Program.fs: the same minimal API routes, each calling a handler.
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using WebApp;

var builder = WebApplication.CreateBuilder(args);
var app = builder.Build();
app.MapGet("/", () => Handlers.Hello());
app.MapGet("/count", () => Handlers.Count());
app.MapGet("/items", () => Results.Json(Handlers.Items()));
app.MapGet("/page", () => Results.Content(Handlers.Page(), "text/html"));
app.Run();
