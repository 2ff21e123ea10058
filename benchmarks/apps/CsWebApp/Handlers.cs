// Request handlers: the C# twin of FsWebApp/Handlers.fs. The web mode of benchmarks/latency.py edits the string
// Hello returns.
using System.Collections.Generic;
using System.Threading;

namespace WebApp;

public record Item(int Id, string Name);

public static class Handlers
{
    // State kept in memory across requests (and across hot reloads): how many requests /count has served.
    private static int served;

    public static string Hello() => "Hello from C#";

    public static string Count() => $"count {Interlocked.Increment(ref served)}";

    public static List<Item> Items() => new() { new Item(1, "apple"), new Item(2, "pear") };

    public static string Page() =>
        "<!DOCTYPE html>\n<html><head><title>WebApp</title></head>"
        + "<body><h1 id=\"title\">Welcome</h1><p>served by C#</p></body></html>";
}
