namespace Native;

/// <summary>A C# library in the F# app's closure: its edits need a restart.</summary>
public static class Greeter
{
    public static string Hello(string name) => "hello " + name;
}
