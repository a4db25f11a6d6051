module lbx.dev/router

go 1.24
