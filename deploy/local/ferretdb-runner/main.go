// Command ferretdb-runner runs FerretDB v1 with its SQLite backend, embedded as a library.
//
// The plain `go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2` binary panics at
// start (its version file is not in the module zip); the embedded API does not read it.
// See docs/adr/0002-ferretdb-embedded-runner.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dataDir := flag.String("data", "data/ferretdb", "directory holding one SQLite file per database")
	flag.Parse()

	abs, err := filepath.Abs(*dataDir)
	if err != nil {
		log.Fatalf("data dir: %v", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		log.Fatalf("data dir: %v", err)
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
	})
	if err != nil {
		log.Fatalf("ferretdb: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	go func() {
		// MongoDBURI blocks until the listener is up: print the readiness line then.
		fmt.Printf("ferretdb-runner ready on %s (data %s)\n", f.MongoDBURI(), abs)
	}()

	if err := f.Run(ctx); err != nil {
		log.Fatalf("ferretdb: %v", err)
	}
	fmt.Println("ferretdb-runner stopped")
}
