{
  "targets": [
    {
      "target_name": "shm",
      "sources": ["shm.cc", "shmop.c", "src/copy.c", "src/handles.c", "src/sections.c"],
      "include_dirs": [".", "src", "<!(node -p \"require('node:path').dirname(require.resolve('nan/nan.h'))\")"],
      "cflags": ["-Wall", "-Wextra"],
      "cflags_c": ["-std=c99"],
      "conditions": [
        ["OS=='win'", {
          "sources": ["src/shmop-win.c", "src/sections-win.c", "src/futex-ring-none.c"]
        }, {
          "sources": ["src/shmop-posix.c", "src/sections-posix.c"]
        }],
        ["OS=='linux'", {
          "sources": ["src/sections-linux.c", "src/futex-ring-linux.c"]
        }],
        ["OS!='win' and OS!='linux'", {
          "sources": ["src/sections-poll.c", "src/futex-ring-none.c"]
        }],
        ["OS=='mac'", {
          "xcode_settings": {
            "GCC_C_LANGUAGE_STANDARD": "c99",
            "WARNING_CFLAGS": ["-Wall", "-Wextra"],
            "MACOSX_DEPLOYMENT_TARGET": "10.15"
          }
        }],
        ["OS=='win'", {
          "defines": ["_CRT_SECURE_NO_WARNINGS"],
          "msvs_settings": {
            "VCCLCompilerTool": {
              "WarningLevel": 4
            }
          }
        }]
      ]
    }
  ]
}
