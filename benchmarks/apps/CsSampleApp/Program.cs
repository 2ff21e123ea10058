// The C# twin of sample_app/Program.fs: the same tick lines, so benchmarks/latency.py reads both the same way.
using System;
using System.Threading;

namespace SampleApp;

public static class Program
{
    // State that survives hot reloads: the counter keeps counting across edits.
    private static int ticks;

    private static void Tick()
    {
        ticks++;
        Console.WriteLine($"tick {ticks}: {Greeting.greeting("F#")} | score {Greeting.score(ticks)} | " +
                          $"describe {Greeting.describe(new[] { 1, 2, 3 })}");
    }

    public static int Main(string[] args)
    {
        int interval = args is ["--interval-ms", var ms] ? int.Parse(ms) : 1000;
        Console.WriteLine($"SampleApp running (tick every {interval} ms); edit Greeting.cs and save");
        while (true)
        {
            Tick();
            Thread.Sleep(interval);
        }
    }
}
