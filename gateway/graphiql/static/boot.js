// Starts GraphiQL from the gateway's own copies of React, ReactDOM and GraphiQL (see
// gateway/graphiql/__init__.py). What differs per deployment (the endpoint, the example
// query) is in data attributes of #graphiql, so this file stays static and the page's
// Content-Security-Policy needs no inline script.
(function () {
  "use strict";
  var root = document.getElementById("graphiql");
  var fetcher = GraphiQL.createFetcher({ url: root.dataset.endpoint });
  ReactDOM.createRoot(root).render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      // Shown on a first visit; GraphiQL keeps the visitor's own tabs after that.
      defaultQuery: root.dataset.defaultQuery,
      inputValueDeprecation: true,
      // Headers may hold a token: never written to the browser's storage.
      shouldPersistHeaders: false,
    }),
  );

  // The documentation explorer open on the left, as the README promises. Not through
  // GraphiQL's visiblePlugin prop: GraphiQL 4 applies it after its first render, when
  // the plugin pane is already laid out hidden (off-screen), and nothing shows it again.
  // The sidebar's button both selects the plugin and shows the pane.
  var SHOW_DOCS = '.graphiql-sidebar button[aria-label="Show Documentation Explorer"]';
  function openDocs() {
    var button = root.querySelector(SHOW_DOCS);
    if (button !== null) {
      button.click();
    }
    return button !== null;
  }
  if (!openDocs()) {
    var watcher = new MutationObserver(function () {
      if (openDocs()) {
        watcher.disconnect();
      }
    });
    watcher.observe(root, { childList: true, subtree: true });
  }
})();
