module github.com/syndb/federation/tools/golangci-lint

go 1.26
