// Command mwprof is Mailwright's headless command line (the same cli.Main as the real
// binary) with a CPU profile, so the benchmark driver can explain a missed target with
// `go tool pprof -top`. Build it like the headless binary (-tags nogui, CGO_ENABLED=0).
//
// Environment: MWPROF_CPU is the CPU profile to write (required), MWPROF_FYNEAPP the path
// of FyneApp.toml (the version's one source; the real binary embeds it, default
// ./FyneApp.toml).
package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/mailwright/mailwright/cli"
)

func main() {
	cpu := os.Getenv("MWPROF_CPU")
	if cpu == "" {
		fmt.Fprintln(os.Stderr, "mwprof: set MWPROF_CPU to the profile file to write")
		os.Exit(2)
	}
	fyneApp := os.Getenv("MWPROF_FYNEAPP")
	if fyneApp == "" {
		fyneApp = "FyneApp.toml"
	}
	meta, err := os.ReadFile(fyneApp)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mwprof: %v (set MWPROF_FYNEAPP)\n", err)
		os.Exit(2)
	}
	f, err := os.Create(cpu)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mwprof: %v\n", err)
		os.Exit(2)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "mwprof: %v\n", err)
		os.Exit(2)
	}
	code := cli.Main(os.Args[1:], cli.Env{Stdout: os.Stdout, Stderr: os.Stderr, FyneApp: meta})
	pprof.StopCPUProfile()
	if err := f.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "mwprof: %v\n", err)
		code = 2
	}
	os.Exit(code)
}
