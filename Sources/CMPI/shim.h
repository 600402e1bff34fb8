#ifndef EBFT_CMPI_SHIM_H
#define EBFT_CMPI_SHIM_H
// The MPI C API for Swift. Open MPI's predefined handles are macros that expand to the
// addresses of global objects, which Swift cannot import; re-export each one as a
// static inline function named after it (MPI_COMM_WORLD -> cmpi_comm_world()).
#include <mpi.h>

static inline MPI_Comm cmpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Comm cmpi_comm_self(void) { return MPI_COMM_SELF; }
static inline MPI_Comm cmpi_comm_null(void) { return MPI_COMM_NULL; }

static inline MPI_Datatype cmpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype cmpi_char(void) { return MPI_CHAR; }
static inline MPI_Datatype cmpi_uint8(void) { return MPI_UINT8_T; }
static inline MPI_Datatype cmpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype cmpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype cmpi_int32(void) { return MPI_INT32_T; }
static inline MPI_Datatype cmpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype cmpi_uint64(void) { return MPI_UINT64_T; }
static inline MPI_Datatype cmpi_datatype_null(void) { return MPI_DATATYPE_NULL; }

static inline MPI_Op cmpi_op_sum(void) { return MPI_SUM; }
static inline MPI_Op cmpi_op_max(void) { return MPI_MAX; }
static inline MPI_Op cmpi_op_min(void) { return MPI_MIN; }
static inline MPI_Op cmpi_op_prod(void) { return MPI_PROD; }
static inline MPI_Op cmpi_op_bxor(void) { return MPI_BXOR; }

static inline void *cmpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Status *cmpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline MPI_Request cmpi_request_null(void) { return MPI_REQUEST_NULL; }

static inline MPI_Errhandler cmpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline MPI_Errhandler cmpi_errors_are_fatal(void) { return MPI_ERRORS_ARE_FATAL; }

static inline int cmpi_any_source(void) { return MPI_ANY_SOURCE; }
static inline int cmpi_any_tag(void) { return MPI_ANY_TAG; }
static inline int cmpi_undefined(void) { return MPI_UNDEFINED; }
static inline int cmpi_success(void) { return MPI_SUCCESS; }
static inline int cmpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int cmpi_max_processor_name(void) { return MPI_MAX_PROCESSOR_NAME; }
static inline int cmpi_thread_single(void) { return MPI_THREAD_SINGLE; }
static inline int cmpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int cmpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline int cmpi_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }

static inline MPI_Message cmpi_message_null(void) { return MPI_MESSAGE_NULL; }
static inline MPI_Message cmpi_message_no_proc(void) { return MPI_MESSAGE_NO_PROC; }
static inline int cmpi_err_truncate(void) { return MPI_ERR_TRUNCATE; }

/// The largest tag value `comm` accepts (MPI_TAG_UB attribute; at least 32767), or -1.
static inline int cmpi_tag_ub(MPI_Comm comm) {
    int *value = 0; int flag = 0;
    if (MPI_Comm_get_attr(comm, MPI_TAG_UB, &value, &flag) != MPI_SUCCESS || !flag || !value) return -1;
    return *value;
}

static inline int cmpi_status_source(const MPI_Status *s) { return s->MPI_SOURCE; }
static inline int cmpi_status_tag(const MPI_Status *s) { return s->MPI_TAG; }
static inline int cmpi_status_error(const MPI_Status *s) { return s->MPI_ERROR; }
#endif
