namespace Shapes

module Right =
    let describe (x: int) = Core.label ("right " + string (x + 1))
