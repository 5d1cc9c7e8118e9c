package atomicfile

// CreateLocked lets tests hold a temporary file as a writer does.
var CreateLocked = createLocked
