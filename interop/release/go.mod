module github.com/keyless-dev/keyless/interop/release

go 1.26.0

replace github.com/keyless-dev/keyless => ../..

require (
	github.com/google/go-cmp v0.7.0
	github.com/keyless-dev/keyless v0.0.0
)
