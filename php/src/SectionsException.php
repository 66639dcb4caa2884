<?php
declare(strict_types=1);

namespace NodejsShm;

/**
 * A failure of a section table, with the same error codes as the Node.js side
 * (ERR_SHM_NOT_SECTIONS, ERR_SHM_LAYOUT_VERSION, ERR_SHM_CORRUPT, ERR_SHM_SECTION_BUSY,
 * ERR_SHM_NOT_WRITER, ERR_SHM_READ_ONLY, ERR_SHM_NO_SUCH_SECTION, ERR_SHM_READ_STARVED, ERR_OUT_OF_RANGE,
 * ERR_SHM_UNSUPPORTED, ERR_SHM_CLOSED, ERR_SHM_TABLE_RETIRED, ERR_INVALID_ARG_VALUE) or an operating-system reason (ENOENT, EACCES, ...).
 */
final class SectionsException extends \RuntimeException
{
    public function __construct(public readonly string $errorCode, string $message)
    {
        parent::__construct("$errorCode: $message");
    }
}
