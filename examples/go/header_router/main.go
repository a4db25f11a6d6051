package main

import "lbx.dev/router/lbxrouter"

func init() {
	lbxrouter.Export(func() lbxrouter.Router { return &HeaderRouter{} })
}

// main is never called: the plugin is a library (a wasip1 reactor) whose exports lbx calls.
func main() {}
