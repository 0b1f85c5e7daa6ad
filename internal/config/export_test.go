package config

// CheckStreamFrom exposes checkStreamFrom to the external tests that
// compare it with internal/event's parser.
var CheckStreamFrom = checkStreamFrom
