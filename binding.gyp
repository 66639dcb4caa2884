{
  "targets": [
    {
      "target_name": "shm",
      "sources": [
        "shm.cc", "src/shm-args.cc", "src/shm-segments.cc", "src/shm-sections.cc",
        "src/shm-claims.cc", "src/shm-waits.cc", "src/shm-wait-ring.cc", "src/shm-wait-helpers.cc",
        "src/shm-table-waits.cc",
        "shmop.c", "src/copy.c", "src/handles.c", "src/sections.c", "src/sections-many.c"
      ],
      "include_dirs": [
        "<!(node -p \"require('node:path').dirname(require.resolve('nan/nan.h'))\")",
        ".",
        "src",
        "<(SHARED_INTERMEDIATE_DIR)"
      ],
      "actions": [
        {
          "action_name": "embed_read_shm",
          "inputs": ["lib/read-shm.js", "scripts/embed-js.js"],
          "outputs": ["<(SHARED_INTERMEDIATE_DIR)/read-shm.js.h"],
          "action": ["<!(node -p process.execPath)", "scripts/embed-js.js", "lib/read-shm.js",
                     "kReadSHMSource", "<(SHARED_INTERMEDIATE_DIR)/read-shm.js.h"]
        }
      ],
      "cflags": ["-Wall", "-Wextra", "-fvisibility=hidden"],
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
            "GCC_SYMBOLS_PRIVATE_EXTERN": "YES",
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
