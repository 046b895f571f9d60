package p2p

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// ClickHouse's native protocol opens with the client's Hello packet:
// packet type 0 (a uvarint), then the client name (a string: uvarint
// length and bytes), its major and minor version and its protocol revision
// (uvarints), and the default database, user and password (strings).
// ClickHouse 18.16 (revision 54412) and current releases write it alike;
// what a newer client sends after the server's answer (the quota key of
// revision 54458 and later) is not part of it.

// CHHello is a ClickHouse client's Hello packet.
type CHHello struct {
	ClientName   string
	Major, Minor uint64
	Revision     uint64
	Database     string
	User         string
	Password     string
}

// maxHelloString caps each string of a Hello: names, a database, a user
// and a password are short, and a stranger's bytes must not size a buffer.
const maxHelloString = 4 << 10

// chClientHello and chServerException are the packet types of the client's
// Hello and of a server's exception.
const (
	chClientHello     = 0
	chServerException = 2
)

// errNotHello is a first packet that is not a Hello.
var errNotHello = errors.New("first packet is not a ClickHouse Hello")

// ReadCHHello reads a client's Hello packet from r, refusing any other
// packet, a string over 4 KiB and a truncated packet.
func ReadCHHello(r *bufio.Reader) (CHHello, error) {
	var h CHHello
	kind, err := binary.ReadUvarint(r)
	if err != nil {
		return h, fmt.Errorf("read packet type: %w", err)
	}
	if kind != chClientHello {
		return h, fmt.Errorf("%w (packet type %d)", errNotHello, kind)
	}
	str := func(field string, dst *string) {
		if err == nil {
			*dst, err = readCHString(r)
			if err != nil {
				err = fmt.Errorf("read hello %s: %w", field, err)
			}
		}
	}
	num := func(field string, dst *uint64) {
		if err == nil {
			*dst, err = binary.ReadUvarint(r)
			if err != nil {
				err = fmt.Errorf("read hello %s: %w", field, err)
			}
		}
	}
	str("client name", &h.ClientName)
	num("major version", &h.Major)
	num("minor version", &h.Minor)
	num("revision", &h.Revision)
	str("database", &h.Database)
	str("user", &h.User)
	str("password", &h.Password)
	return h, err
}

func readCHString(r *bufio.Reader) (string, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return "", err
	}
	if n > maxHelloString {
		return "", fmt.Errorf("string of %d bytes exceeds the %d-byte cap", n, maxHelloString)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b), nil
}

// Append appends the packet, as a client writes it, to b.
func (h CHHello) Append(b []byte) []byte {
	b = binary.AppendUvarint(b, chClientHello)
	b = appendCHString(b, h.ClientName)
	b = binary.AppendUvarint(b, h.Major)
	b = binary.AppendUvarint(b, h.Minor)
	b = binary.AppendUvarint(b, h.Revision)
	b = appendCHString(b, h.Database)
	b = appendCHString(b, h.User)
	return appendCHString(b, h.Password)
}

func appendCHString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// ClickHouse's exception codes a gateway answers with: NETWORK_ERROR, on
// which a client fails over to the next replica, and WRONG_PASSWORD.
const (
	CHNetworkError  = 210
	CHWrongPassword = 193
)

// AppendCHException appends a server Exception packet with code and msg
// to b: what a ClickHouse client reads, instead of the server's Hello, as
// the reason its connection failed.
func AppendCHException(b []byte, code int32, msg string) []byte {
	b = binary.AppendUvarint(b, chServerException)
	b = binary.LittleEndian.AppendUint32(b, uint32(code))
	b = appendCHString(b, "DB::Exception")
	b = appendCHString(b, msg)
	b = appendCHString(b, "")
	return append(b, 0) // no nested exception
}
