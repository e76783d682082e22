//! One web seed's task: fetches runs of pieces over HTTP range requests.

// helper webseed-http
