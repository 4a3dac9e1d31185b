"""batchlab's engine: define-by-run autograd on one flat parameter vector, the study's model, SGD,
and the training loop. The engine never imports mpi4py: the training loop is handed a communicator."""
