module handler

go 1.22

require handler/function v0.0.0

replace handler/function => ./function
