//! The built-in web page, compiled into the binary: no build step, no CDN.
//! The daemon serves these at `/`, `/app.js` and `/style.css`.
