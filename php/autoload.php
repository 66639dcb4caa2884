<?php
// For use without Composer: require this file, then use NodejsShm\SectionTable.
spl_autoload_register(static function (string $class): void {
    $prefix = 'NodejsShm\\';
    if (strncmp($class, $prefix, strlen($prefix)) === 0) {
        require __DIR__ . '/src/' . substr($class, strlen($prefix)) . '.php';
    }
});
