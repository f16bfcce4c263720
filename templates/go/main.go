// Fjord's go wrapper: serves $PORT and hands every request but GET /_/health to function.Handle.
package main

import (
	"log"
	"net/http"
	"os"

	"handler/function"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/_/health", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	})
	mux.HandleFunc("/", function.Handle)
	log.Fatal(http.ListenAndServe(":"+port, mux))
}
