module github.com/keyless-dev/keyless

go 1.26.0

require (
	github.com/google/go-cmp v0.7.0
	github.com/youmark/pkcs8 v0.0.0-20240726163527-a2c0da244d78
	software.sslmate.com/src/go-pkcs12 v0.7.4
)

require golang.org/x/crypto v0.59.0 // indirect
