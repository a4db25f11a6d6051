module lbx.dev/examples/header_router

go 1.24

require lbx.dev/router v0.0.0

// The SDK is in this repository (sdk/go): nothing is fetched from the Go module proxy.
replace lbx.dev/router => ../../../sdk/go
