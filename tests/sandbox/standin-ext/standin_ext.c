#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *add(PyObject *self, PyObject *args) {
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
    return PyLong_FromLong(a + b);
}

static PyObject *max_jobs(PyObject *self, PyObject *unused) {
    return PyLong_FromLong(BUILT_WITH_MAX_JOBS);
}

static PyMethodDef methods[] = {
    {"add", add, METH_VARARGS, "Add two integers in C."},
    {"max_jobs", max_jobs, METH_NOARGS, "MAX_JOBS of the build that compiled this module."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "standin_ext", NULL, -1, methods};

PyMODINIT_FUNC PyInit_standin_ext(void) { return PyModule_Create(&module); }
