package chnative

import (
	"bufio"
	"bytes"
	"testing"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/stretchr/testify/require"
)

// Column decoders read some columns from Rows.Wire and others through
// ch-go's reader, one after the other; that is right only while ch-go's
// reader reads through the connection's buffer rather than buffering
// ahead of it.
func TestProtoReaderReadsThroughTheWireBuffer(t *testing.T) {
	t.Parallel()
	data := make([]byte, 2*readBuffer)
	for i := range data {
		data[i] = byte(i)
	}
	wire := bufio.NewReaderSize(bytes.NewReader(data), readBuffer)
	r := proto.NewReader(wire)
	b, err := r.ReadByte()
	require.NoError(t, err)
	require.Equal(t, data[0], b)
	require.Equal(t, readBuffer-1, wire.Buffered(), "ch-go buffers ahead of the connection's reader")
	next, err := wire.ReadByte()
	require.NoError(t, err)
	require.Equal(t, data[1], next)
}
