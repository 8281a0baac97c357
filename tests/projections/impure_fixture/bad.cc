// A fixture for the purity check: a projections-like file that includes RocksDB.
// The check must refuse it (see tests/CMakeLists.txt). Never compiled.
#include "rocksdb/db.h"
