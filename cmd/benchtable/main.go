// Command benchtable prints the table of a benchmark run (the output of `go
// tool task bench`, in the Go benchmark format): each figure beside its
// baseline from the same run, the ratio and the goal. With -readme FILE it
// also rewrites FILE's benchmark section (between the markers
// "<!-- bench:begin -->" and "<!-- bench:end -->") with that table.
//
//	benchtable [-readme README.md] RUN.txt
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/syndb/federation/internal/benchtable"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("benchtable", flag.ContinueOnError)
	readme := fs.String("readme", "", "rewrite this Markdown file's benchmark section with the table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: benchtable [-readme FILE] RUN.txt")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("open the run (run `go tool task bench` first): %w", err)
	}
	defer func() { _ = f.Close() }()
	r, err := benchtable.Parse(f, fs.Arg(0))
	if err != nil {
		return err
	}
	var table bytes.Buffer
	if err := benchtable.Table(&table, r, rows); err != nil {
		return err
	}
	if _, err := os.Stdout.Write(table.Bytes()); err != nil {
		return err
	}
	if *readme == "" {
		return nil
	}
	doc, err := os.ReadFile(*readme)
	if err != nil {
		return err
	}
	out, err := benchtable.Rewrite(doc, table.String())
	if err != nil {
		return fmt.Errorf("%s: %w", *readme, err)
	}
	if err := os.WriteFile(*readme, out, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "benchtable: rewrote the benchmark section of %s\n", *readme)
	return nil
}
