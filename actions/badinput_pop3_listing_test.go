package actions

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
)

// TestBadInputPOP3EndlessListing: STAT counts 3 messages, then the LIST (or UIDL) answer
// never ends. The client stops after a bounded number of lines (2 × STAT + 10,000),
// fails with an error that says so, and gives the session up, instead of collecting lines
// until memory runs out.
func TestBadInputPOP3EndlessListing(t *testing.T) {
	for _, cmd := range []string{"LIST", "UIDL"} {
		t.Run(cmd, func(t *testing.T) {
			var lines atomic.Int64
			host, port := badInputIMAPServerScript(t, func(c net.Conn) {
				br := bufio.NewReader(c)
				io.WriteString(c, "+OK ready\r\n")
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					switch verb := strings.ToUpper(strings.TrimSpace(line)); {
					case verb == "STAT":
						io.WriteString(c, "+OK 3 300\r\n")
					case verb == "LIST" || verb == "UIDL":
						io.WriteString(c, "+OK\r\n")
						bw := bufio.NewWriter(c)
						for n := 1; n < 50_000_000; n++ {
							if _, err := fmt.Fprintf(bw, "%d %d\r\n", n, 100+n); err != nil {
								return // the client closed the connection
							}
							lines.Add(1)
						}
						return
					case verb == "CAPA":
						io.WriteString(c, "-ERR no\r\n")
					case verb == "QUIT":
						io.WriteString(c, "+OK bye\r\n")
						return
					default:
						io.WriteString(c, "+OK\r\n")
					}
				}
			})
			te := newTestEnv(t)
			te.mustRun(NewPOP3Open(), map[string]string{"host": host, "port": port, "security": "none", "auth": "password",
				"user": "u", "password": "p", "allow_insecure_auth": "true", "timeout": "5s"})
			s, err := Lookup[*POP3Session](te.Sessions, DefaultPOP3Connection, "pop3")
			if err != nil {
				t.Fatal(err)
			}
			if cmd == "LIST" {
				_, err = s.Client.List()
			} else {
				_, err = s.Client.UIDLs()
			}
			var le *POP3ListingError
			if !errors.As(err, &le) || le.Limit != 2*3+10_000 || !strings.Contains(err.Error(), "more than 10006 lines (STAT counted 3 messages)") {
				t.Fatalf("err = %v", err)
			}
			if s.Client.Err() == nil {
				t.Fatal("the session is still used after an endless listing")
			}
			if _, _, err := s.Client.Stat(); !errors.As(err, &le) {
				t.Fatalf("a later command: %v, want the listing's error", err)
			}
			// What the server managed to write before the client hung up: the client read
			// 10,006 lines, plus what the socket buffers held.
			if n := lines.Load(); n > 2_000_000 {
				t.Fatalf("the server wrote %d lines before the client gave up", n)
			}
		})
	}
}
