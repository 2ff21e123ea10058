// hotreload browser refresh: keeps this page in step with `hotreload watch` (served at /_hotreload/refresh.js).
// Messages on /_hotreload/events: "hello <server id>" on connect; "reload [path...]" reloads the page (after
// re-fetching the named files, so the reload does not show cached copies); "css <path>..." swaps the matching
// stylesheets in place. A connection that drops is retried; one that comes back from another server id (the app
// restarted) reloads the page.
(function () {
  "use strict";
  if (window.__hotreloadRefresh || typeof EventSource === "undefined") return;
  var state = window.__hotreloadRefresh = { server: null };  // the id of the server this page listens to

  var delay = 250;

  function decoded(path) {
    try { return decodeURIComponent(path); } catch (e) { return path; }
  }

  function reload(paths) {
    var fetches = paths.map(function (path) {
      return fetch("/" + path.replace(/^\/+/, ""), { cache: "reload" }).catch(function () {});
    });
    Promise.all(fetches).then(function () { location.reload(); });
  }

  function swapStylesheet(path) {
    var wanted = "/" + decoded(path).replace(/^\/+/, "");
    var links = document.querySelectorAll('link[rel~="stylesheet"][href]');
    Array.prototype.forEach.call(links, function (link) {
      if (link.hasAttribute("data-hotreload-old")) return;  // being replaced already
      var url = new URL(link.getAttribute("data-hotreload") || link.href, location.href);  // the page's own URL
      if (url.origin !== location.origin) return;
      var at = decoded(url.pathname);
      if (at !== wanted && at.slice(-wanted.length) !== wanted) return;
      fetch(url.href, { cache: "reload" }).catch(function () {});  // so a later reload gets no cached copy
      var busted = new URL(url.href);
      busted.searchParams.set("hotreload", Date.now().toString(36));
      var fresh = link.cloneNode(false);
      fresh.href = busted.href;
      fresh.setAttribute("data-hotreload", url.href);
      link.setAttribute("data-hotreload-old", "");
      var drop = function () { link.remove(); };
      fresh.addEventListener("load", drop);
      fresh.addEventListener("error", drop);
      link.after(fresh);  // both apply until the new one has loaded: no flash of an unstyled page
    });
  }

  function connect() {
    var source = new EventSource("/_hotreload/events");
    source.onmessage = function (event) {
      var words = String(event.data).split(" ").filter(Boolean);
      var kind = words.shift();
      if (kind === "hello") {
        delay = 250;
        if (state.server === null) state.server = words[0];
        else if (state.server !== words[0]) location.reload();  // a new process: the app restarted
      } else if (kind === "reload") {
        reload(words);
      } else if (kind === "css") {
        words.forEach(swapStylesheet);
      }
    };
    source.onerror = function () {
      source.close();
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 1000);
    };
  }

  connect();
})();
