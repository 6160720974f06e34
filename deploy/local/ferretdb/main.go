// Command ferretdb-embedded runs FerretDB v1 (MongoDB wire protocol, SQLite backend)
// in-process, behind a small proxy that makes every write command atomic.
//
// Why the embedding: a plain `go install` panics at start (version.txt, FerretDB#2982).
//
// Why the proxy: FerretDB 1.24 executes update and findAndModify as a read, a change in
// Go, and a separate write, with nothing held in between. Concurrent writers lose
// updates: 60 concurrent {$inc: 1} on one document leave it at 1, and a conditional
// update ({left: {$gte: 100}}, {$inc: {left: -100}}) succeeds for more callers than the
// condition allows. MongoDB guarantees single-document atomicity and the services are
// built on it, so this stand-in serializes write commands (reads stay concurrent).
package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

const opMsg = 2013

// Commands that change data: each runs alone, start to finish.
var writeCommands = map[string]bool{
	"insert": true, "update": true, "delete": true, "findAndModify": true, "findandmodify": true,
	"create": true, "createIndexes": true, "drop": true, "dropDatabase": true, "dropIndexes": true,
	"renameCollection": true, "bulkWrite": true,
}

var writeLock sync.Mutex

func main() {
	listen := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on")
	dataDir := flag.String("data", "", "existing directory for the SQLite files")
	flag.Parse()
	if *dataDir == "" {
		log.Fatal("-data is required")
	}
	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		log.Fatal(err)
	}
	socket := filepath.Join(*dataDir, "ferretdb.sock")
	_ = os.Remove(socket)

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{Unix: socket},
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dataDir + "/",
	})
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go f.Run(ctx)

	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		<-ctx.Done()
		_ = listener.Close()
	}()
	log.Printf("ferretdb listening on %s (writes serialized), data in %s", *listen, *dataDir)
	for {
		client, err := listener.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Printf("accept: %v", err)
			continue
		}
		go serve(client, socket)
	}
}

// readMessage reads one complete wire-protocol message (16-byte header + body).
func readMessage(r io.Reader) ([]byte, error) {
	header := make([]byte, 4)
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, err
	}
	length := int(binary.LittleEndian.Uint32(header))
	if length < 16 || length > 48*1024*1024 {
		return nil, fmt.Errorf("bad message length %d", length)
	}
	message := make([]byte, length)
	copy(message, header)
	if _, err := io.ReadFull(r, message[4:]); err != nil {
		return nil, err
	}
	return message, nil
}

// commandName is the first key of an OP_MSG body document (section kind 0).
func commandName(message []byte) string {
	if len(message) < 26 || binary.LittleEndian.Uint32(message[12:16]) != opMsg {
		return ""
	}
	sections := message[20:] // after header (16) and flagBits (4)
	if sections[0] != 0 {
		return ""
	}
	document := sections[1:]
	if len(document) < 6 {
		return ""
	}
	element := document[4:] // skip the document's int32 length
	nameStart := 1          // skip the element's type byte
	for i := nameStart; i < len(element); i++ {
		if element[i] == 0 {
			return string(element[nameStart:i])
		}
	}
	return ""
}

func moreToCome(message []byte) bool {
	return binary.LittleEndian.Uint32(message[12:16]) == opMsg &&
		binary.LittleEndian.Uint32(message[16:20])&2 != 0
}

func serve(client net.Conn, socket string) {
	defer client.Close()
	backend, err := net.Dial("unix", socket)
	if err != nil {
		log.Printf("backend: %v", err)
		return
	}
	defer backend.Close()
	for {
		request, err := readMessage(client)
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.Printf("client: %v", err)
			}
			return
		}
		write := writeCommands[commandName(request)]
		if write {
			writeLock.Lock()
		}
		err = roundTrip(request, client, backend)
		if write {
			writeLock.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// roundTrip forwards one request and relays its reply (or replies, for exhaust cursors).
func roundTrip(request []byte, client, backend net.Conn) error {
	if _, err := backend.Write(request); err != nil {
		return err
	}
	if moreToCome(request) {
		return nil // fire-and-forget: the server sends no reply
	}
	for {
		reply, err := readMessage(backend)
		if err != nil {
			return err
		}
		if _, err := client.Write(reply); err != nil {
			return err
		}
		if !moreToCome(reply) {
			return nil
		}
	}
}
