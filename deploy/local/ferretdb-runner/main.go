// Command ferretdb-runner runs FerretDB v1 embedded as a library, on PostgreSQL (the default of
// deploy/local, -postgresql-url) or on SQLite files (-data), see docs/adr/0012.
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
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dataDir := flag.String("data", "data/ferretdb", "directory holding one SQLite file per database (SQLite backend)")
	pgURL := flag.String("postgresql-url", "", "PostgreSQL URL: use the PostgreSQL backend instead of SQLite")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		log.Fatalf("log level: %v", err)
	}
	logger := slog.New(&quietHandler{slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})})

	conf := &ferretdb.Config{Listener: ferretdb.ListenerConfig{TCP: *listen}, Logger: logger}
	var storage string
	if *pgURL != "" {
		conf.Handler, conf.PostgreSQLURL = "postgresql", *pgURL
		storage = "PostgreSQL"
	} else {
		abs, err := filepath.Abs(*dataDir)
		if err != nil {
			log.Fatalf("data dir: %v", err)
		}
		if err := os.MkdirAll(abs, 0o700); err != nil {
			log.Fatalf("data dir: %v", err)
		}
		conf.Handler, conf.SQLiteURL = "sqlite", "file:"+abs+"/"
		storage = "SQLite files in " + abs
	}
	f, err := ferretdb.New(conf)
	if err != nil {
		log.Fatalf("ferretdb: %v", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	go func() {
		// MongoDBURI blocks until the listener is up: print the readiness line then.
		fmt.Printf("ferretdb-runner ready on %s (%s)\n", f.MongoDBURI(), storage)
	}()

	if err := f.Run(ctx); err != nil {
		log.Fatalf("ferretdb: %v", err)
	}
	fmt.Println("ferretdb-runner stopped")
}

// quietHandler keeps the documents' contents out of the log and drops what is expected:
//   - attributes "args.*" (a query's arguments: documents, which may hold personal data) are
//     never written;
//   - a query refused for a duplicate key (SQLSTATE 23505) is not an error here: the services
//     insert to ask "seen before?" (docs/adr/0007), the client gets its answer anyway.
type quietHandler struct{ slog.Handler }

func (h *quietHandler) Handle(ctx context.Context, r slog.Record) error {
	drop := false
	kept := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		switch {
		case strings.HasPrefix(a.Key, "args"):
		case a.Key == "err" && strings.Contains(a.Value.String(), "SQLSTATE 23505"):
			drop = true
		default:
			kept.AddAttrs(a)
		}
		return true
	})
	if drop {
		return nil
	}
	return h.Handler.Handle(ctx, kept)
}

func (h *quietHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &quietHandler{h.Handler.WithAttrs(attrs)}
}

func (h *quietHandler) WithGroup(name string) slog.Handler {
	return &quietHandler{h.Handler.WithGroup(name)}
}
