/* related-content: the "see also" list for a site's own pages, from this function.

   <script src="https://FUNCTION/assets/widget.js" data-k="5" async></script>

   The list goes where the tag is (in <head>: at the end of <body>), or into data-target (a CSS
   selector). It asks about data-url, else the page's <link rel=canonical>, else its address, query
   included (a page known by ?id=5 is another page than ?id=6): a page whose address holds a secret
   (a preview link) names its public address in data-url or a canonical link.
   Optional: data-corpus, data-min-score, data-heading ("" for none), data-heading-level (2-6).
   Links are the answer's click_url: a click is recorded, then the reader lands on the article. A failed request shows
   nothing to readers and says why in the console. Text is set as text, never parsed as HTML.
   Meanwhile a placeholder (class related-content-loading, aria-busy) keeps the list's place.
   A single-page app, once it shows another page (address and canonical link changed), says so:
   document.dispatchEvent(new Event("related-content:refresh")); the list is asked for again and
   replaces the one shown (refreshes told within one task are one ask). Once half the list (or half
   the screen's height of it) has been in view for a second in a visible tab, or one of its links is
   clicked, the widget
   posts the answer's seen_url, once: /stats counts the answers seen and their click-through. A
   prerendered page asks once the reader opens it. */
(function () {
  "use strict";
  // document's own getter: a page's markup can name an element "currentScript" (<img name=...>, which
  // a comment's sanitiser may let through) and hand us its src and data- attributes instead
  var getter = Object.getOwnPropertyDescriptor(Document.prototype, "currentScript");
  var script = getter ? getter.get.call(document) : document.currentScript;
  if (!(script instanceof HTMLScriptElement) || !script.src) {
    // a module, or a script inside a shadow root: nothing tells us where the function is
    warn("load widget.js with a plain <script src=...> tag");
    return;
  }
  var data = script.dataset;
  var api = new URL("../", script.src).href; // FUNCTION/assets/widget.js -> FUNCTION/, path prefix kept
  var shown = null; // the list on the page, which a refresh replaces
  var watching = null; // stops watching that list's place in view
  var latest = 0; // the newest request: an older answer arriving after it is not shown
  var heading = data.heading === undefined ? "Related articles" : data.heading;
  // the level that fits the page's outline (h3 under its own h2s); h2 by default
  var level = data.headingLevel || "2";
  if (!/^[2-6]$/.test(level)) {
    warn("data-heading-level " + JSON.stringify(level) + " is not 2 to 6: h2");
    level = "2";
  }

  function pageUrl() {
    if (data.url) {
      return new URL(data.url, document.baseURI).href;
    }
    var canonical = document.querySelector('link[rel~="canonical"][href]');
    return (canonical ? canonical.href : location.href).split("#")[0];
  }

  function whenParsed(then) {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", then, { once: true });
    } else {
      then();
    }
  }

  function warn(message) {
    if (window.console) {
      console.warn("related-content: " + message);
    }
  }

  function target() {
    try {
      return document.querySelector(data.target);
    } catch (error) {
      return null; // not a selector: said by place(), not thrown into the site's page
    }
  }

  // Whether the box's place has been read, so the box can go there while the rest of the page is:
  // after the tag, or in a data-target the parser is past (a node follows it; one still open, that
  // holds the tag, say, gets what is read later after the box). The end of <body> is not read until
  // the page is.
  function placeRead() {
    if (document.readyState !== "loading") {
      return true;
    }
    if (!data.target) {
      return !!document.body && document.body.contains(script);
    }
    for (var node = target(); node; node = node.parentNode) {
      if (node.nextSibling) {
        return true;
      }
    }
    return false;
  }

  // Puts the box in the page, true if it could; quiet (the placeholder): a problem is said once, by the
  // answer's box
  function place(box, quiet) {
    if (data.target) {
      var into = target();
      if (!into) {
        if (!quiet) {
          warn("no element matches data-target " + JSON.stringify(data.target));
        }
        return false;
      }
      into.appendChild(box);
    } else if (script.parentNode && document.body && document.body.contains(script)) {
      script.parentNode.insertBefore(box, script.nextSibling);
    } else if (document.body) {
      document.body.appendChild(box); // a tag in <head>: the end of the page
    } else {
      if (!quiet) {
        warn("the page has no <body>: give data-target");
      }
      return false;
    }
    return true;
  }

  function show(box, seenUrl) {
    whenParsed(function () {
      var before = shown; // the placeholder, or the list of the page shown before
      shown = box;
      if (watching) {
        watching(); // stops watching the list shown before
      }
      if (before && before.isConnected && box) {
        before.parentNode.replaceChild(box, before); // in its place: what follows it does not move
      } else {
        if (before && before.parentNode) {
          before.parentNode.removeChild(before);
        }
        if (box) {
          place(box);
        }
      }
      if (box) {
        watch(box, seenUrl);
      }
    });
  }

  // Says once that the list was in the reader's view: a list below the fold that nobody scrolled to
  // is no impression. A tab in the background or a prerendered page is not in view until shown. A
  // click on one of its links (a tap on the first links of a list taller than a phone's screen, Enter
  // on a link reached by Tab) says it was seen: counted clicked but not seen, ctr_seen read below ctr.
  // So do a middle click and a link's menu (right click, long press), which open it in a new tab.
  function watch(box, seenUrl) {
    if (!/^https?:\/\//i.test(seenUrl || "") || !window.IntersectionObserver) {
      return;
    }
    var inView = false;
    // told at each hundredth of the list: a list taller than the screen crosses half the screen's
    // height between quarters (one of 4,000 px on a phone, scrolled through, filled the screen and
    // never reached the next quarter: never seen)
    for (var steps = [], step = 0; step <= 100; step++) {
      steps.push(step / 100);
    }
    var observer = new IntersectionObserver(function (entries) {
      var entry = entries[entries.length - 1];
      // no rootBounds in a cross-origin frame: its innerHeight is the frame's (a frame sized to its
      // content, 5000 px, had never seen a list that filled the screen), not the reader's screen
      var height = entry.rootBounds ? entry.rootBounds.height : Math.min(window.innerHeight, window.screen.height);
      inView = entry.isIntersecting && (entry.intersectionRatio >= 0.5 || entry.intersectionRect.height >= height / 2);
      report();
    }, { threshold: steps });
    // what tells it: the tab shown or hidden, a prerendered page opened, a link clicked or its menu opened
    var listeners = [
      [document, "visibilitychange", report], [document, "prerenderingchange", report],
      [box, "click", clicked], [box, "auxclick", clicked], [box, "contextmenu", clicked]
    ];
    function listen(add) {
      listeners.forEach(function (l) {
        l[0][add ? "addEventListener" : "removeEventListener"](l[1], l[2], true);
      });
    }
    function stop() {
      clearTimeout(dwell);
      observer.disconnect();
      listen(false);
      watching = null;
    }
    // half in view for a second, as viewability is measured for ads: a list flicked past is not seen
    var dwell = null;
    function report() {
      if (inView && document.visibilityState === "visible" && !document.prerendering) {
        dwell = dwell || setTimeout(post, 1000);
      } else {
        clearTimeout(dwell);
        dwell = null;
      }
    }
    function clicked(event) {
      if (event.target && event.target.closest && event.target.closest("a[href]")) {
        post();
      }
    }
    function post() {
      stop();
      if (!(navigator.sendBeacon && navigator.sendBeacon(seenUrl))) {
        fetch(seenUrl, { method: "POST", keepalive: true, credentials: "omit", mode: "no-cors" }).catch(warn);
      }
    }
    listen(true);
    watching = stop;
    observer.observe(box);
  }

  function render(answer, asked) {
    var links = (answer.results || []).filter(function (result) {
      return /^https?:\/\//i.test(result.click_url || "");
    });
    if (!links.length) {
      warn("no related articles for " + asked + " (the answer holds none: is data-min-score too high?)");
      show(null); // an empty box would only take space
      return;
    }
    var box = aside();
    var list = listIn(box);
    links.forEach(function (result) {
      var link = item(list).appendChild(document.createElement("a"));
      link.className = "related-content-link";
      link.href = result.click_url;
      link.textContent = result.title || result.url;
    });
    show(box, answer.seen_url);
  }

  function listIn(box) {
    var list = box.appendChild(document.createElement("ul"));
    list.className = "related-content-list";
    return list;
  }

  function item(list) {
    var item = list.appendChild(document.createElement("li"));
    item.className = "related-content-item";
    return item;
  }

  // The box and its heading, the list's and the placeholder's alike
  function aside() {
    var box = document.createElement("aside");
    box.className = "related-content";
    if (heading) {
      // named by the owner's heading, in the site's language; none given, no name rather than an English one
      box.setAttribute("aria-label", heading);
      var title = document.createElement("h" + level);
      title.className = "related-content-heading";
      title.textContent = heading;
      box.appendChild(title);
    }
    return box;
  }

  // The lines to keep for the links asked for, data-k read as the function reads k (any script's decimal
  // digits: "５", "٥"; a "+" and spaces around them allowed), 5 if not given; 0 for a k every deployment
  // refuses (its 400 shows nothing): below 1 or past 10,000, the largest MAX_K. MAX_K is unknown here:
  // past the default 100 the lines stay 100, so that a typo ("5000") costs no more than the largest
  // default answer. (ASCII digits alone had kept no line for data-k="５", answered with 5 links.)
  function linesAsked() {
    if (!data.k) {
      return 5; // the API's default k
    }
    // around it the spaces Python's int() strips (JavaScript's \s has U+FEFF too, and not U+0085)
    var space = "[\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*";
    var digit = digitClass();
    var digits = new RegExp("^" + space + "\\+?(" + digit + "+)" + space + "$", "u").exec(data.k);
    return digits ? linesFor(digits[1], new RegExp(digit, "u")) : 0;
  }

  // Any script's decimal digit where the browser knows Unicode's classes (2018-2020 on), else ASCII
  // digits, as before them. Tried at run time: a class written in the script (/\p{Nd}/u) is a syntax
  // error in such a browser, and the whole widget had gone unread
  function digitClass() {
    try {
      new RegExp("\\p{Nd}", "u");
      return "\\p{Nd}";
    } catch (e) {
      return "[0-9]";
    }
  }

  function linesFor(digits, digit) {
    var k = 0;
    for (var c of digits) {
      // Unicode encodes each script's digits as runs of ten from its zero, runs side by side (the
      // mathematical digits): a digit's value is the digits before it in its run, modulo 10
      var code = c.codePointAt(0), below = 0;
      while (below < 60 && digit.test(String.fromCodePoint(code - below - 1))) {
        below++;
      }
      k = k * 10 + (below % 10);
      if (k > 10000) {
        return 0; // past every deployment's k ("5" followed by 5,000 zeros too)
      }
    }
    return k >= 1 ? Math.min(k, 100) : 0;
  }

  // Keeps the list's place while it is asked for: the heading and a blank line per link asked for, in
  // the list's own markup and classes, so the site's stylesheet gives it the list's height and the
  // answer moves nothing below it (Cumulative Layout Shift). Screen readers are told it is loading
  // (aria-busy) and skip the blanks. An answer with nothing to show removes it.
  function reserve() {
    var lines = linesAsked();
    if (!lines) {
      return; // the answer is a 400, which shows nothing: a placeholder would only come and go
    }
    var box = aside();
    box.className += " related-content-loading";
    box.setAttribute("aria-busy", "true");
    var list = listIn(box);
    list.setAttribute("aria-hidden", "true");
    for (var n = lines; n > 0; n--) {
      item(list).textContent = "\u00a0"; // a line's height
    }
    function put() {
      shown = place(box, true) ? box : shown;
    }
    // at once where it can be: placed once a long page has been read, it moved what was read meanwhile
    if (placeRead()) {
      put();
    } else {
      whenParsed(put);
    }
  }

  function ask() {
    if (document.prerendering) {
      // a prerendered page the reader may never open: its answer would count in /stats' requests
      // (lowering ctr) for nobody; asked once it is shown
      document.removeEventListener("prerenderingchange", ask);
      document.addEventListener("prerenderingchange", ask, { once: true });
      return;
    }
    var asked;
    var request = ++latest;
    try {
      asked = pageUrl();
    } catch (error) {
      warn("data-url " + JSON.stringify(data.url) + " is not a URL");
      show(null);
      return;
    }
    var query = new URL(api);
    query.searchParams.set("url", asked);
    [["k", "k"], ["corpus", "corpus"], ["minScore", "min_score"]].forEach(function (pair) {
      if (data[pair[0]]) {
        query.searchParams.set(pair[1], data[pair[0]]);
      }
    });
    fetch(query.href, { headers: { Accept: "application/json" }, credentials: "omit" })
      .then(function (response) {
        // a proxy's error page (an HTML 502) is told by its status, not by the JSON parser's complaint
        return response.json().catch(function () {
          throw new Error("HTTP " + response.status + ", not JSON: " + (response.headers.get("Content-Type") || "no type"));
        }).then(function (body) {
          if (!response.ok) {
            var error = body.error || {};
            throw new Error((error.code || response.status) + ": " + (error.message || "request failed"));
          }
          return body;
        });
      })
      .then(function (answer) {
        if (request === latest) {
          render(answer, asked);
        }
      })
      .catch(function (error) {
        if (request === latest) {
          warn("no related articles for " + asked + " (" + error.message + ")");
          show(null);
        }
      });
  }

  // Refreshes told in one go (a router that announces a change twice) are one ask: each ask is a
  // request counted as a list shown, and the widget shows the last answer only (two refreshes had
  // counted three answers for the two lists a reader saw)
  var refreshing = null;
  document.addEventListener("related-content:refresh", function () {
    clearTimeout(refreshing);
    refreshing = setTimeout(ask, 0);
  });
  reserve();
  ask();
})();
