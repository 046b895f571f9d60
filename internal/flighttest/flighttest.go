// Package flighttest calls every method of an Arrow Flight service, for
// tests that walk a server's authorization: each call carries nothing a
// handler could act on (a path descriptor, a forged ticket, an empty
// action or stream), so a call that passes the server's checks is refused
// by its handler, not run.
package flighttest

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow/flight"
	pb "github.com/apache/arrow-go/v18/arrow/flight/gen/flight"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Methods lists every method of the Flight service, unary and streaming,
// as its service description has them.
func Methods() []string {
	var out []string
	for _, m := range pb.FlightService_ServiceDesc.Methods {
		out = append(out, m.MethodName)
	}
	for _, s := range pb.FlightService_ServiceDesc.Streams {
		out = append(out, s.StreamName)
	}
	return out
}

// Call calls method on cl with ctx's metadata and returns the status code
// of its answer (OK for a stream that ended without error).
func Call(ctx context.Context, cl flight.Client, method string) (codes.Code, error) {
	path := &flight.FlightDescriptor{Type: flight.DescriptorPATH, Path: []string{"neuron"}}
	var err error
	switch method {
	case "GetFlightInfo":
		_, err = cl.GetFlightInfo(ctx, path)
	case "PollFlightInfo":
		_, err = cl.PollFlightInfo(ctx, path)
	case "GetSchema":
		_, err = cl.GetSchema(ctx, path)
	case "DoGet":
		var s flight.FlightService_DoGetClient
		if s, err = cl.DoGet(ctx, &flight.Ticket{Ticket: []byte("forged")}); err == nil {
			_, err = s.Recv()
		}
	case "ListFlights":
		var s flight.FlightService_ListFlightsClient
		if s, err = cl.ListFlights(ctx, &flight.Criteria{}); err == nil {
			_, err = s.Recv()
		}
	case "ListActions":
		var s flight.FlightService_ListActionsClient
		if s, err = cl.ListActions(ctx, &flight.Empty{}); err == nil {
			_, err = s.Recv()
		}
	case "DoAction":
		var s flight.FlightService_DoActionClient
		if s, err = cl.DoAction(ctx, &flight.Action{Type: "CancelFlightInfo"}); err == nil {
			_, err = s.Recv()
		}
	case "DoPut":
		var s flight.FlightService_DoPutClient
		if s, err = cl.DoPut(ctx); err == nil {
			_ = s.CloseSend()
			_, err = s.Recv()
		}
	case "DoExchange":
		var s flight.FlightService_DoExchangeClient
		if s, err = cl.DoExchange(ctx); err == nil {
			_ = s.CloseSend()
			_, err = s.Recv()
		}
	case "Handshake":
		var s flight.FlightService_HandshakeClient
		if s, err = cl.Handshake(ctx); err == nil {
			_ = s.CloseSend()
			_, err = s.Recv()
		}
	default:
		return codes.Unknown, fmt.Errorf("flighttest: no call for method %q", method)
	}
	if errors.Is(err, io.EOF) {
		return codes.OK, nil
	}
	return status.Code(err), nil
}
