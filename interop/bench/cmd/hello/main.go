// Command hello is the Go hello world of scripts/bench's start-up
// baselines: the least a Go program costs to start on the machine.
package main

func main() { println("hi") }
