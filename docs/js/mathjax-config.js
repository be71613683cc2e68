// MathJax settings for the equations that pymdownx.arithmatex marks up (generic mode): typeset only
// inside class="arithmatex", inline \( ... \), display \[ ... \]. Loaded before mathjax/tex-chtml.js.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: false,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};
