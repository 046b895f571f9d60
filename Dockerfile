# syntax=docker/dockerfile:1
# Build: a static syndb binary (pure Go, no cgo).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/syndb ./cmd/syndb

# Run: distroless static has CA certificates and a non-root user and nothing
# else; syndb needs no shell or libc.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/syndb /usr/local/bin/syndb
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/syndb"]
