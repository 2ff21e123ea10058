// Edit these functions while the app runs: the next tick prints the new results.
// The names mirror sample_app/Greeting.fs, which F# compiles to the same static methods of SampleApp.Greeting.
using System.Collections.Generic;
using System.Linq;

namespace SampleApp;

public static class Greeting
{
    public static string greeting(string name) => $"Hello, {name}";

    public static int multiplier() => 2;

    public static int score(int tick) => tick * multiplier();

    public static int describe(IEnumerable<int> values) => values.Select(v => v + 1).Sum();
}
