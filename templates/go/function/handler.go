package function

import (
	"io"
	"net/http"
)

// Handle answers a request, as any http.HandlerFunc does.
func Handle(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("Hello from Fjord!\n"))
}
