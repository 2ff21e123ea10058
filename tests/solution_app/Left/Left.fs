namespace Shapes

module Left =
    let describe (x: int) = Core.label ("left " + string (Core.twice x))
