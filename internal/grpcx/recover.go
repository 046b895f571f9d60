// Package grpcx holds what every gRPC server of the federation shares: a
// handler that panics fails its call with codes.Internal instead of
// stopping the process.
package grpcx

import (
	"context"
	"log/slog"
	"runtime/debug"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Recover returns the server options that turn a handler's panic into an
// Internal error on that call, logged with its stack.
func Recover(log *slog.Logger) []grpc.ServerOption {
	fail := func(method string, r any) error {
		log.Error("grpc handler panicked", "method", method, "panic", r, "stack", string(debug.Stack()))
		return status.Error(codes.Internal, "internal error")
	}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				resp, err = nil, fail(info.FullMethod, r)
			}
		}()
		return h(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fail(info.FullMethod, r)
			}
		}()
		return h(srv, ss)
	}
	return []grpc.ServerOption{grpc.ChainUnaryInterceptor(unary), grpc.ChainStreamInterceptor(stream)}
}
