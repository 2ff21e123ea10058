/// Compiled into the app from outside its folder (a linked file).
module App.Banner

let title = "shapes"
let banner () = "== " + title + " =="
