"""The ground floor's terminal output: progress of long loops (training steps, downloads, decoding)
on stderr, shared by the engine and the image data without either importing the other."""
