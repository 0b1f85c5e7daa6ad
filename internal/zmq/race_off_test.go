//go:build !race

package zmq

// raceDetector: built with -race, whose own memory (shadow memory, and
// state for every goroutine ever started) is in the process's RSS.
const raceDetector = false
