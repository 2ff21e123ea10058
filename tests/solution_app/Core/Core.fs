namespace Shapes

/// The bottom of the diamond: Left and Right both use it.
module Core =
    let label (name: string) = "core:" + name

    let twice (x: int) = x * 2

    /// A function defined as a value (point-free): `Session.call` applies it to its arguments.
    let shouted = label >> fun s -> s.ToUpper()

    /// A class: the refused-edit test gives it an interface, which the runtime cannot add to a loaded type.
    type Named(name: string) =
        member _.Name = name
