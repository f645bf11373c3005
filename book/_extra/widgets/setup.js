// Loaded between require.js and the widget manager (book/_config.yml, nb_ipywidgets_js).
(function () {
  // The manager finds its own files (its fonts) through the module name it registers with
  // require.js: point that name at the book's copy, not at the page's folder or a CDN.
  var src = document.currentScript.src;
  var book = src.slice(0, src.lastIndexOf("/widgets/") + 1);
  require.config({paths: {"@jupyter-widgets/html-manager/dist": book + "vendor/html-manager"}});

  // The manager typesets widget labels with MathJax 2's MathJax.Hub.Queue; the book serves
  // MathJax 3 (loaded with defer, so present by DOMContentLoaded, before widgets render).
  document.addEventListener("DOMContentLoaded", function () {
    if (window.MathJax && !window.MathJax.Hub) {
      window.MathJax.Hub = {
        Queue: function (job) {
          var element = job[2];
          if (window.MathJax.typesetPromise && element) {
            window.MathJax.startup.promise.then(function () {
              return window.MathJax.typesetPromise([element]);
            });
          }
        },
      };
    }
  });
})();
