/// Matched by the app's `Pages/*.fs` glob.
module App.Pages.Home

let render (x: int) = sprintf "home %d" x
